"""The intake: POST /ebms, the one place that orders the pipeline's steps and commits."""
