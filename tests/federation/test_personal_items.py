import pytest
import torch

from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.local.personal_items import PersonalItemRows
from mmfedrec.federation.privacy.compression import CompressionConfig
from tests.federation.test_compression import fake_result
from tests.federation.test_simulation import make_simulation


def test_a_client_ranks_with_its_own_fine_tuned_rows_and_the_global_table_elsewhere() -> None:
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(12, 5, generator=generator)
    personal = PersonalItemRows(12)
    clients = torch.tensor([4, 0, 2])
    result = fake_result(generator)
    personal.update(clients, result, table)
    tables = personal.tables(torch.tensor([0, 4, 6]), table)
    for row, client in enumerate([0, 4]):
        k = clients.tolist().index(client)
        expected = table.clone()
        mask = result.row_mask[k]
        expected.index_add_(0, result.row_items[k][mask], result.row_delta[k][mask])
        torch.testing.assert_close(tables[row], expected)
    torch.testing.assert_close(tables[2], table)  # client 6 never trained: the global table
    personal.update(torch.tensor([4]), fake_result(generator, n_clients=1), table)  # a new round replaces
    assert ((personal.keys // 12) == 4).sum() <= 12 and ((personal.keys // 12) == 0).any()


@pytest.mark.parametrize("model_name", ["pfedrec", "moe"])  # --personal-items works for any method
def test_dual_personalisation_changes_rankings_and_survives_a_checkpoint(model_name: str) -> None:
    shared_only = make_simulation("batched", model_name, lr=0.05)
    dual = make_simulation("batched", model_name, lr=0.05, personal_items=True)
    for round_index in range(3):
        shared_only.run_round(round_index)
        dual.run_round(round_index)
    # training is identical, only ranking differs (to float noise: Adam's first step on softmax's
    # near-zero gradients is sign-like, here within 0.2 % of a 0.05 step)
    for name, tensor in shared_only.state().items():
        torch.testing.assert_close(dual.state()[name], tensor, atol=1e-4, rtol=1e-4, msg=name)
    users = dual.split.evaluated_users("valid")[:5]
    assert not torch.allclose(torch.from_numpy(dual.scorer()(users)), torch.from_numpy(shared_only.scorer()(users)))
    snapshot = dual.state()
    dual.run_round(3)
    dual.load_state(snapshot)
    again = evaluate(dual.scorer(), dual.split, "valid")["sampled"]["ndcg@10"]
    dual.load_state(snapshot)
    assert evaluate(dual.scorer(), dual.split, "valid")["sampled"]["ndcg@10"] == again


def test_personal_rows_are_not_uploaded_even_with_compression() -> None:
    dual = make_simulation(
        "batched", "pfedrec", lr=0.05, personal_items=True, compression=CompressionConfig(compress_bits=8)
    )
    sent: list[dict[str, torch.Tensor]] = []
    dual.on_upload = lambda client, message: sent.append(message)
    dual.run_round(0)
    assert len(dual.personal.keys) > 0 and sent
    assert all(not any("personal" in name for name in message) for message in sent)  # what each client sent
    assert "personal.keys" not in dual.compressor.state()
