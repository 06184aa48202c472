"""Federated training: the client model, local training, aggregation, engines (in-process and Flower)."""
