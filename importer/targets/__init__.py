"""The targets: one package per API (``ti``, ``mde``), the ``Target`` protocol they implement
(``base``), the wire helpers they share (``common``) and the registry that names them (``registry``).

Only the registry imports a target package; the packages never import each other.
"""
