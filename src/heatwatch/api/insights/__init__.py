"""Decision support computed from the stored aggregates: interpolated heat-island maps, intervention
effects (difference-in-differences) and seasonal rankings.

The modules here are pure (numpy/scipy/matplotlib, no I/O) except :mod:`.queries`, which reads
the aggregates from InfluxDB for the routes and the seasonal report alike.
"""
