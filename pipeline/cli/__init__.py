"""The ``facecascade`` command (`main`), its demo (`demo`) and drawing detections onto photos
(`annotate`)."""
