"""The packed layout the MPI scripts use (no MPI import: the pytest process reads it too).
Entries cross 1024-item blocks unevenly; an empty one and a 1-item one; 5263 items."""
SHAPES = {"W": (37, 61), "b": (5,), "empty": (0,), "one": (1,), "V": (3000,)}
