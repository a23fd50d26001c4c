"""Scale-out: several ``tradercoin serve`` instances on one PostgreSQL (docs/cluster.md).

- :mod:`.directory`: who owns which user (the contract the HTTP layer and the supervisor use);
- :mod:`.ownership`: claiming, keeping and handing over users with PostgreSQL advisory locks;
- :mod:`.relay`: order events that cross instances (LISTEN/NOTIFY, events from the store);
- :mod:`.commands`: requests that reach the owner of a user.
"""
