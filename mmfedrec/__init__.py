"""mmfedrec: multimodal, generative, federated recommendation.

`import mmfedrec` stays light: heavy stacks (torch, transformers, open_clip, flwr, gradio)
load lazily inside the subpackages that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
