"""The Flower app: ClientApp, ServerApp, their run config, and the launcher of both engines."""
