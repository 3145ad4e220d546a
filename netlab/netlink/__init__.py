"""netlab's own netlink layer, in three parts:

- `transport.py`: sockets, framing, batches, acknowledgements, dumps; never loses a reply.
- `codec.py`: attributes (type-length-value records, nested), as tables.
- `rtnl.py`: the rtnetlink messages netlab sends, and the fields of the replies it compares.

pyroute2 is the tests' independent decoder of the same bytes (tests/test_netlink.py).
"""
