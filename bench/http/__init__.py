"""Load over HTTP and gRPC: the load generator, its report, autoscaling signals, soak."""
