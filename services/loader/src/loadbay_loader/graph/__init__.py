"""The Neptune-compatible graph bulk loader: its HTTP API (`/loader`, `/system`, `/graph`),
its job engine (loads, feeds, the queue, recovery) and the graph and quad stores it fills.

Its own part of the loader: it shares only the service's schema, its settings and the
streaming of source objects (`loadbay_loader.streaming`) with the reload and workspace paths,
and runs its loads on a pool of its own (`LOADBAY_LOADER_GRAPH_POOL_SIZE`).
"""
