"""KEDA external scaler: our decisions over KEDA's ``externalscaler.proto`` (gRPC)."""
