"""The camera adversary's mechanics: the sign of the game, no gradient through the condition, permutation
invariance, output sizes, the exact no-op at mu = 0, and D's isolation from the extractor's optimizer."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from canu_core.engine.adversary import CameraAdversary
from canu_core.models.discriminators import CameraDiscriminator, ConditionalCameraDiscriminator, build_discriminator

INPUT_DIM, FEATURE_DIM, NUM_CAMERAS, NUM_CLUSTERS, BATCH = 6, 8, 3, 4, 24
KINDS = ("adv", "canu")


def make_batch(seed: int = 0):
    """Inputs with a camera-dependent offset (so there is camera information to find), camera ids and labels."""
    generator = torch.Generator().manual_seed(seed)
    camids = torch.arange(BATCH) % NUM_CAMERAS
    labels = torch.arange(BATCH) // (BATCH // NUM_CLUSTERS)
    inputs = torch.randn(BATCH, INPUT_DIM, generator=generator) + camids[:, None].float()
    return inputs, camids, labels


def make_extractor(seed: int = 1) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(INPUT_DIM, FEATURE_DIM)


def make_adversary(kind: str, mu: float = 1.0, seed: int = 2, **kwargs) -> CameraAdversary:
    torch.manual_seed(seed)
    return CameraAdversary(kind, FEATURE_DIM, NUM_CAMERAS, mu=mu, lr=1e-3, **kwargs)


def centroid_table(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L2-normalised mean feature of each label (rows in label order), as PseudoLabels gives them."""
    sums = torch.zeros(NUM_CLUSTERS, features.shape[1]).index_add(0, labels, features)
    return nn.functional.normalize(sums, dim=1)


def conditions(kind: str, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    return centroid_table(features.detach(), labels)[labels] if kind == "canu" else None


def discriminator_state(adversary: CameraAdversary) -> dict[str, torch.Tensor]:
    return {name: t.clone() for name, t in adversary.discriminator.state_dict().items()}


def assert_same_tensors(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("kind", KINDS)
def test_discriminator_step_lowers_its_loss_and_generator_step_raises_it(kind):
    inputs, camids, labels = make_batch()
    extractor, adversary = make_extractor(), make_adversary(kind)
    features = extractor(inputs)
    cond = conditions(kind, features, labels)

    before = adversary.camera_loss(features, camids, cond).item()
    stats = adversary.discriminator_step(features, camids, cond)
    after_discriminator = adversary.camera_loss(features, camids, cond).item()
    assert stats["loss"] == pytest.approx(before)
    assert 0.0 <= stats["accuracy"] <= 1.0
    assert after_discriminator < before

    optimizer = torch.optim.SGD(extractor.parameters(), lr=0.05)
    adversary.generator_loss(features, camids, cond).backward()
    optimizer.step()
    after_generator = adversary.camera_loss(extractor(inputs), camids, cond).item()
    assert after_generator > after_discriminator


def test_generator_loss_is_minus_mu_times_the_camera_loss():
    inputs, camids, labels = make_batch()
    features = make_extractor()(inputs)
    adversary = make_adversary("canu", mu=0.05)
    cond = conditions("canu", features, labels)
    assert torch.equal(
        adversary.generator_loss(features, camids, cond), -0.05 * adversary.camera_loss(features, camids, cond)
    )


def extractor_gradient(extractor: nn.Linear, adversary: CameraAdversary, inputs, camids, cond):
    extractor.zero_grad(set_to_none=True)
    adversary.generator_loss(extractor(inputs), camids, cond).backward()
    return [p.grad.clone() for p in extractor.parameters()]


def test_no_gradient_reaches_the_extractor_through_the_centroid():
    inputs, camids, labels = make_batch()
    extractor, adversary = make_extractor(), make_adversary("canu")

    live_table = centroid_table(extractor(inputs), labels)  # built from the extractor's output, grad enabled
    assert live_table.requires_grad
    through_live = extractor_gradient(extractor, adversary, inputs, camids, live_table[labels])
    through_detached = extractor_gradient(extractor, adversary, inputs, camids, live_table.detach()[labels])
    for live, detached in zip(through_live, through_detached):
        assert torch.equal(live, detached)
        assert live.abs().sum() > 0

    leaf_table = live_table.detach().requires_grad_()
    adversary.generator_loss(extractor(inputs), camids, leaf_table[labels]).backward()
    assert leaf_table.grad is None


def test_the_condition_branch_learns_from_the_discriminator_loss():
    inputs, camids, labels = make_batch()
    features = make_extractor()(inputs)
    adversary = make_adversary("canu")
    adversary.discriminator_step(features, camids, conditions("canu", features, labels))
    condition_weight = adversary.discriminator.condition_branch[0].weight
    assert condition_weight.grad is not None and condition_weight.grad.abs().sum() > 0


def test_relabelling_the_clusters_changes_nothing():
    inputs, camids, labels = make_batch()
    extractor = make_extractor()
    table = centroid_table(extractor(inputs).detach(), labels)
    permutation = torch.tensor([2, 0, 3, 1])  # cluster c becomes cluster permutation[c]
    permuted_table = torch.empty_like(table)
    permuted_table[permutation] = table
    permuted_labels = permutation[labels]
    assert not torch.equal(permuted_labels, labels) and not torch.equal(permuted_table, table)

    results = []
    for label_ids, rows in ((labels, table), (permuted_labels, permuted_table)):
        adversary = make_adversary("canu")
        cond = rows[label_ids]
        stats = adversary.discriminator_step(extractor(inputs), camids, cond)
        results.append(
            (stats, discriminator_state(adversary), extractor_gradient(extractor, adversary, inputs, camids, cond))
        )
    (stats, state, gradient), (permuted_stats, permuted_state, permuted_gradient) = results
    assert stats == permuted_stats
    assert_same_tensors(state, permuted_state)
    for plain, permuted in zip(gradient, permuted_gradient):
        assert torch.equal(plain, permuted)


@pytest.mark.parametrize("feature_dim", [16, 2048])
@pytest.mark.parametrize("kind", KINDS)
def test_output_has_one_logit_per_target_camera(kind, feature_dim):
    discriminator = build_discriminator(kind, feature_dim, num_cameras=5)
    features = torch.randn(4, feature_dim)
    logits = discriminator(features, torch.randn(4, feature_dim)) if kind == "canu" else discriminator(features)
    assert logits.shape == (4, 5)


def test_layer_widths_are_the_papers_for_2048_d_features():
    def widths(branch):
        return [tuple(m.weight.shape[::-1]) for m in branch.modules() if isinstance(m, nn.Linear)]

    conditional = ConditionalCameraDiscriminator(2048, num_cameras=8)
    assert widths(conditional.condition_branch) == [(2048, 1024)]
    assert widths(conditional.feature_branch) == [(2048, 1024)]
    assert widths(conditional.head) == [(1024, 1024), (1024, 8)]
    plain = CameraDiscriminator(2048, num_cameras=8)
    assert widths(plain) == [(2048, 1024), (1024, 1024), (1024, 8)]


def test_merge_is_sum_or_product_and_changes_the_output():
    features, centroids = torch.randn(4, 16), torch.randn(4, 16)
    outputs = {}
    for merge in ("sum", "product"):
        torch.manual_seed(0)
        outputs[merge] = ConditionalCameraDiscriminator(16, 3, merge=merge)(features, centroids)
    assert not torch.allclose(outputs["sum"], outputs["product"])
    with pytest.raises(ValueError, match="merge"):
        ConditionalCameraDiscriminator(16, 3, merge="concat")


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="at least 2 cameras"):
        CameraDiscriminator(16, num_cameras=1)
    with pytest.raises(ValueError, match="kind"):
        build_discriminator("none", 16, 3)
    with pytest.raises(ValueError, match="kind"):
        CameraAdversary("cgan", 16, 3, mu=0.1, lr=1e-3)
    with pytest.raises(ValueError, match="mu"):
        CameraAdversary("canu", 16, 3, mu=-0.1, lr=1e-3)


def test_conditional_adversary_needs_centroids_and_valid_camids():
    inputs, camids, _ = make_batch()
    features = make_extractor()(inputs)
    for mu in (0.0, 1.0):  # the same errors whether or not a discriminator is built
        adversary = make_adversary("canu", mu=mu)
        with pytest.raises(ValueError, match="one centroid per sample"):
            adversary.generator_loss(features, camids)
        with pytest.raises(ValueError, match="camids"):
            adversary.generator_loss(features, camids + 1, features)


def train_step(extractor: nn.Linear, inputs, camids, labels, adversary: CameraAdversary | None) -> None:
    """One SGD step of a toy re-ID loss (plus the adversary's terms, if any), with dropout drawing from the RNG."""
    optimizer = torch.optim.SGD(extractor.parameters(), lr=0.1)
    features = nn.functional.dropout(extractor(inputs), p=0.5)
    loss = features[labels == 0].pow(2).mean()
    if adversary is not None:
        cond = conditions("canu", features, labels)
        adversary.discriminator_step(features, camids, cond)
        loss = loss + adversary.generator_loss(features, camids, cond)
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("kind, mu", [("canu", 0.0), ("adv", 0.0), ("none", 0.1)])
def test_inactive_adversary_is_exactly_the_baseline(kind, mu):
    inputs, camids, labels = make_batch()

    torch.manual_seed(3)
    rng_before = torch.get_rng_state()
    adversary = CameraAdversary(kind, FEATURE_DIM, NUM_CAMERAS, mu=mu, lr=1e-3)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert not adversary.active and adversary.discriminator is None and adversary.optimizer is None
    extractor = nn.Linear(INPUT_DIM, FEATURE_DIM)
    train_step(extractor, inputs, camids, labels, adversary)

    torch.manual_seed(3)
    baseline = nn.Linear(INPUT_DIM, FEATURE_DIM)
    train_step(baseline, inputs, camids, labels, adversary=None)

    assert_same_tensors(extractor.state_dict(), baseline.state_dict())
    term = adversary.generator_loss(extractor(inputs), camids, torch.zeros(BATCH, FEATURE_DIM))
    assert term.item() == 0.0 and term.grad_fn is None
    assert adversary.discriminator_step(extractor(inputs), camids, torch.zeros(BATCH, FEATURE_DIM)) == {}
    assert adversary.state_dict() == {"config": adversary.config}


@pytest.mark.parametrize("kind", KINDS)
def test_discriminator_is_isolated_from_the_extractors_optimizer(kind):
    inputs, camids, labels = make_batch()
    extractor, adversary = make_extractor(), make_adversary(kind)
    assert {id(p) for group in adversary.optimizer.param_groups for p in group["params"]} == {
        id(p) for p in adversary.discriminator.parameters()
    }

    features = extractor(inputs)
    cond = conditions(kind, features, labels)
    adversary.discriminator_step(features, camids, cond)
    assert all(p.grad is None for p in extractor.parameters())  # D's step sees detached features

    state = discriminator_state(adversary)  # weights and BatchNorm running statistics
    gradients = [p.grad.clone() for p in adversary.discriminator.parameters()]
    optimizer = torch.optim.SGD(extractor.parameters(), lr=0.1)
    adversary.generator_loss(features, camids, cond).backward()
    optimizer.step()
    assert_same_tensors(state, discriminator_state(adversary))
    for before, parameter in zip(gradients, adversary.discriminator.parameters()):
        assert torch.equal(before, parameter.grad)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in extractor.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_resumes_exactly(kind):
    inputs, camids, labels = make_batch()
    features = make_extractor()(inputs).detach()
    cond = conditions(kind, features, labels)
    original = make_adversary(kind, merge="product")
    for _ in range(3):
        original.discriminator_step(features, camids, cond)

    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored = make_adversary(kind, seed=99, merge="product")
    assert not torch.equal(restored.camera_loss(features, camids, cond), original.camera_loss(features, camids, cond))
    restored.load_state_dict(torch.load(buffer))

    assert torch.equal(restored.camera_loss(features, camids, cond), original.camera_loss(features, camids, cond))
    assert restored.discriminator_step(features, camids, cond) == original.discriminator_step(features, camids, cond)
    assert_same_tensors(discriminator_state(restored), discriminator_state(original))

    with pytest.raises(ValueError, match="saved with"):
        make_adversary(kind, merge="sum").load_state_dict(original.state_dict())


def test_the_uniform_objective_is_the_cross_entropy_to_the_uniform_camera_distribution():
    inputs, camids, labels = make_batch()
    features = make_extractor()(inputs)
    adversary = make_adversary("adv", mu=0.3, objective="uniform_ce")
    adversary.discriminator_step(features, camids)
    frozen_logits = adversary.discriminator(features.detach())
    by_hand = -(torch.log_softmax(frozen_logits, dim=1).sum(dim=1) / NUM_CAMERAS).mean()
    uniform = adversary.uniform_loss(features, camids)
    torch.testing.assert_close(uniform, by_hand)
    assert uniform >= math.log(NUM_CAMERAS) - 1e-6  # bounded below, unlike -CE
    torch.testing.assert_close(adversary.generator_loss(features, camids), 0.3 * uniform)
    plain = make_adversary("adv", mu=0.3)
    plain.discriminator_step(features, camids)
    torch.testing.assert_close(plain.generator_loss(features, camids), -0.3 * plain.camera_loss(features, camids))


def test_an_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="objective must be one of"):
        make_adversary("adv", objective="maximise")


@pytest.mark.parametrize("kind", KINDS)
def test_disc_steps_takes_that_many_discriminator_steps_on_the_same_features(kind):
    inputs, camids, labels = make_batch()
    features = make_extractor()(inputs)
    centroids = centroid_table(features.detach(), labels)[labels] if kind == "canu" else None
    several = make_adversary(kind, steps=3)
    stepwise = make_adversary(kind)
    stats = several.discriminator_step(features, camids, centroids)
    first = stepwise.discriminator_step(features, camids, centroids)
    for _ in range(2):
        stepwise.discriminator_step(features, camids, centroids)
    assert stats == first  # the loss and accuracy before the first step
    for (name, a), (_, b) in zip(
        several.discriminator.state_dict().items(), stepwise.discriminator.state_dict().items()
    ):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="at least one step per iteration, got 0"):
        make_adversary(kind, steps=0)
