"""netlab: declare Linux network topologies (namespaces, veth pairs, bridges, addresses) in YAML and make
the kernel match them.

    import netlab
    topo = netlab.load("topologies/seed.yaml")
    print(netlab.diff(topo).render())
    netlab.apply(topo)
    netlab.destroy(topo)

The flow: model (YAML -> Topology -> desired State) -> kernel.observe (live State) -> planner.plan (Plan,
pure data) -> applier.run (steps with undo, through the kernel adapter). The CLI (`netlab.cli`) is a thin
shell over these functions.
"""

from .api import apply, destroy, diff, show, validate
from .errors import NetlabError
from .model import load

__all__ = ["apply", "destroy", "diff", "load", "show", "validate", "NetlabError"]
__version__ = "0.1.0"
