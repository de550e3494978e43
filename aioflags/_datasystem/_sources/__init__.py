"""The network sources (FDv2 and FDv1, polling and streaming), the file source, and what they share."""
