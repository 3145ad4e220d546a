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

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what __getattr__ below returns, as the type checker should see it
    from .api import apply, destroy, diff, show, validate
    from .errors import NetlabError
    from .model import load

__all__ = ["NetlabError", "apply", "destroy", "diff", "load", "show", "validate"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Imported on first use, so that `import netlab.netlink` (or the CLI's --help) does not pay for the
    # schema library: start-up time is most of a small run.
    if name in ("apply", "destroy", "diff", "show", "validate"):
        from . import api

        return getattr(api, name)
    if name == "load":
        from .model import load

        return load
    if name == "NetlabError":
        from .errors import NetlabError

        return NetlabError
    raise AttributeError(f"module 'netlab' has no attribute {name!r}")
