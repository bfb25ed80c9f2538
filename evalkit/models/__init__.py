"""Model bundles (a folder with a manifest and a flavor's files, no pickles) and their flavors."""
