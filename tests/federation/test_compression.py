import pytest
import torch

from mmfedrec.errors import MmfedrecError
from mmfedrec.evaluation.protocols import evaluate
from mmfedrec.federation.local.training import LocalResult
from mmfedrec.federation.privacy.comm import message_nbytes
from mmfedrec.federation.privacy.compression import (
    CompressionConfig,
    ErrorFeedbackCompressor,
    compressed_message,
    dequantize_int8,
    quantize_int8,
    ranked_within_groups,
    topk_mask,
)
from tests.federation.test_simulation import make_simulation


def test_int8_round_trip_is_within_half_a_step_and_keeps_zero_rows() -> None:
    values = torch.randn(5, 33) * torch.tensor([0.0, 1e-3, 1.0, 10.0, 1e3]).unsqueeze(1)
    quantized, scale = quantize_int8(values)
    assert quantized.dtype == torch.int8 and scale.shape == (5, 1)
    error = (dequantize_int8(quantized, scale) - values).abs()
    assert (error <= scale / 2 + 1e-6 * values.abs()).all()
    assert (dequantize_int8(quantized, scale)[0] == 0).all()


def test_topk_keeps_the_largest_entries_of_each_row() -> None:
    magnitude = torch.tensor([[5.0, 1.0, 3.0, 2.0], [0.0, 9.0, 8.0, 7.0]])
    assert topk_mask(magnitude, 0.5).tolist() == [[True, False, True, False], [False, True, True, False]]
    assert topk_mask(magnitude, 0.1).sum(1).tolist() == [1, 1]  # ceil: never nothing


def test_ranks_within_groups_match_a_plain_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    groups = torch.randint(0, 5, (200,), generator=generator)
    magnitude = torch.rand(200, generator=generator)
    ranks = ranked_within_groups(groups, magnitude)
    for g in range(5):
        members = torch.nonzero(groups == g).flatten()
        expected = torch.argsort(torch.argsort(magnitude[members], descending=True))
        assert torch.equal(ranks[members], expected)


def fake_result(generator: torch.Generator, n_clients: int = 3, n_items: int = 12) -> LocalResult:
    """Random uploads of a chunk: a dense shared tensor and a few item rows per client."""
    items = torch.randint(0, n_items, (n_clients, 6, 2), generator=generator)
    mask = torch.rand(n_clients, 6, 2, generator=generator) > 0.2
    return LocalResult(
        private={},
        shared_delta={"experts.weight": torch.randn(n_clients, 2, 4, 4, generator=generator)},
        row_items=items,
        row_mask=mask,
        row_updates=torch.randn(n_clients, 6, 2, 5, generator=generator) * mask.unsqueeze(-1),
        routed_mass=torch.rand(n_clients, 2, generator=generator),
        n_examples=torch.full((n_clients,), 6.0),
        positives=torch.where(mask[..., 0], items[..., 0], -1),
    )


def dense_rows(result: LocalResult, clients: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    table = torch.zeros(n_users, n_items, result.row_delta.shape[-1])
    owners = clients.view(-1, *[1] * (result.row_mask.dim() - 1)).expand_as(result.row_mask)
    return table.index_put_((owners[result.row_mask], result.row_items[result.row_mask]),
                            result.row_delta[result.row_mask], accumulate=True)  # fmt: skip


@pytest.mark.parametrize(
    "config", [CompressionConfig(compress_topk=0.25), CompressionConfig(compress_bits=8), CompressionConfig(0.3, 8)]
)
def test_error_feedback_loses_nothing_it_only_delays(config: CompressionConfig) -> None:
    """Over rounds, what was sent plus what the clients still hold equals what they computed."""
    generator = torch.Generator().manual_seed(1)
    n_users, n_items = 7, 12
    compressor = ErrorFeedbackCompressor(config, n_users, n_items)
    computed_rows = sent_rows = torch.zeros(n_users, n_items, 5)
    computed_shared = sent_shared = torch.zeros(n_users, 32)
    for clients in (torch.tensor([4, 0, 2]), torch.tensor([1, 4, 6]), torch.tensor([0, 2, 4])):
        result = fake_result(generator)
        computed_rows = computed_rows + dense_rows(result, clients, n_users, n_items)
        computed_shared = computed_shared.index_add(0, clients, result.shared_delta["experts.weight"].flatten(1))
        compressed, _ = compressor.compress(result, clients)
        assert compressed.row_delta.dim() == 3  # one merged row per (client, item)
        sent_rows = sent_rows + dense_rows(compressed, clients, n_users, n_items)
        sent_shared = sent_shared.index_add(0, clients, compressed.shared_delta["experts.weight"].flatten(1))
    held = torch.zeros(n_users, n_items, 5)
    held[compressor.row_keys // n_items, compressor.row_keys % n_items] = compressor.row_values
    torch.testing.assert_close(sent_rows + held, computed_rows, atol=1e-5, rtol=0)
    torch.testing.assert_close(sent_shared + compressor.shared_residual, computed_shared, atol=1e-5, rtol=0)
    assert held.abs().sum() > 0  # something really was delayed


@pytest.mark.parametrize(
    "config", [CompressionConfig(compress_topk=0.25), CompressionConfig(compress_bits=8), CompressionConfig(0.3, 8)]
)
def test_reported_bytes_are_the_compressed_messages_bytes(config: CompressionConfig) -> None:
    generator = torch.Generator().manual_seed(2)
    compressor = ErrorFeedbackCompressor(config, 7, 12)
    clients = torch.tensor([5, 1, 3])
    for _ in range(2):
        compressed, sent = compressor.compress(fake_result(generator), clients)
    for k in range(len(clients)):
        message = compressed_message(compressed, k, config)
        assert message_nbytes(message) == int(sent[k])
        if config.compress_bits == 8:
            assert message["items.delta"].dtype == torch.int8


def test_bad_settings_are_refused() -> None:
    with pytest.raises(MmfedrecError, match="topk"):
        CompressionConfig(compress_topk=0.0)
    with pytest.raises(MmfedrecError, match="bits"):
        CompressionConfig(compress_bits=16)


def test_compressed_training_still_learns_on_a_quarter_of_the_bytes() -> None:
    plain = make_simulation("batched", lr=0.05)
    compressed = make_simulation("batched", lr=0.05, compression=CompressionConfig(compress_topk=0.1, compress_bits=8))
    before = evaluate(compressed.scorer(), compressed.split, "valid")["sampled"]["hr@10"]
    plain_bytes = compressed_bytes = 0.0
    for round_index in range(20):
        plain_bytes += plain.run_round(round_index).upload_bytes_per_client
        compressed_bytes += compressed.run_round(round_index).upload_bytes_per_client
    assert evaluate(compressed.scorer(), compressed.split, "valid")["sampled"]["hr@10"] > before + 0.2
    assert compressed_bytes < plain_bytes / 4


def test_both_engines_agree_under_8_bit_compression() -> None:
    """Top-k is left out: a client's Adam steps have near-equal magnitudes (lr * g / (|g| + eps)),
    so which entries make the cut is decided by float noise that differs between engines. For the
    same reason an int8 value can round one step apart (scale = max|update| / 127 ~ 4e-4 here)."""
    config = CompressionConfig(compress_bits=8)
    batched = make_simulation("batched", lr=0.05, compression=config)
    loop = make_simulation("loop", lr=0.05, compression=config)
    for round_index in range(2):
        assert (
            batched.run_round(round_index).upload_bytes_per_client
            == loop.run_round(round_index).upload_bytes_per_client
        )
    for name, tensor in loop.state().items():
        torch.testing.assert_close(batched.state()[name], tensor, atol=1e-3, rtol=0, msg=name)


def test_a_checkpoint_carries_the_clients_residuals() -> None:
    config = CompressionConfig(compress_topk=0.2, compress_bits=8)
    first = make_simulation("batched", lr=0.05, compression=config)
    for round_index in range(2):
        first.run_round(round_index)
    tensors, meta = first.checkpoint_state()
    assert {"ef.shared", "ef.row_keys", "ef.row_values"} <= set(tensors)
    resumed = make_simulation("batched", lr=0.05, compression=config)
    resumed.restore_checkpoint_state(tensors, meta)
    first.run_round(2)
    resumed.run_round(2)
    for name, tensor in first.state().items():
        assert torch.equal(resumed.state()[name], tensor), name
