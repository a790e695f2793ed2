"""The index folder: versions committed atomically, the files of an index, its documents."""
