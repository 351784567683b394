"""Training both cascades: the training loop (`loop`), the samples cut from whole photos
(`photo_windows`, `samples`, `cascade_samples`, `mtcnn_samples`), MTCNN's multi-task loss
(`multitask`) and each cascade's stages, sizes and schedules (`train_cascade`, `train_mtcnn`)."""
