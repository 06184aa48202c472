import numpy as np
import torch

from mmfedrec.encoders.factory import create_encoder
from mmfedrec.encoders.federated_lora import FederatedLoraConfig, text_targets, train_federated_lora
from mmfedrec.encoders.image import load_images
from tests.encoders.conftest import write_posters


def test_clients_upload_only_adapters_and_the_averaged_adapters_learn(tmp_path) -> None:
    catalog = write_posters(tmp_path / "posters", n_items=24)
    torch.manual_seed(0)
    encoder = create_encoder("tiny")
    base = {k: v.clone() for k, v in encoder.model.visual.state_dict().items()}
    pixels, readable = load_images(catalog.items["image_path"].tolist(), encoder.preprocess)
    assert readable.all()
    targets = text_targets(encoder, catalog.items["text"].tolist())
    clients = [np.arange(4 * k, 4 * k + 4) for k in range(6)]  # 6 clients, 4 items each, colours mixed
    config = FederatedLoraConfig(rounds=6, clients_per_round=6, local_steps=3, lr=1e-2)
    tower, result = train_federated_lora(encoder, pixels, targets, clients, config)

    assert result.round_losses[-1] < 0.8 * result.round_losses[0]  # chance is ln 4 = 1.39
    assert 0 < result.upload_bytes_per_client < result.tower_bytes / 5
    frozen = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in tower.state_dict().items()}
    for name, value in base.items():  # the base weights never move (peft merges LoRA into MHA weights
        torch.testing.assert_close(frozen[name], value, atol=1e-5, rtol=0, msg=name)  # per call: roundoff)
