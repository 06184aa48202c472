"""A client's local training: its round's examples, the loss and the steps, and the state it keeps."""
