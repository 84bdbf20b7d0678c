"""eqopt.perturbations against optax.perturbations: samples, values, derivatives."""

import dataclasses
import inspect
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest
from jaxtyping import TypeCheckError

import eqopt
from eqopt import perturbations as PT

from ..helpers import assert_trees_allclose, random_tree, tree_isfinite


def two_leaves(key):
    """A pytree of two leaves (few leaves keep the compiled samplers small)."""
    k1, k2 = jr.split(key)
    return {"w": jr.normal(k1, (4, 3)), "b": jr.normal(k2, (3,))}


def relu_sum(tree):
    return sum(jnp.sum(jnp.maximum(x, 0.0)) for x in jax.tree.leaves(tree))


def argmax_and_sign(tree):
    """Piecewise-constant, pytree in and out: a one-hot argmax and the signs."""
    w = tree["w"].ravel()
    return {"w": jax.nn.one_hot(jnp.argmax(w), w.size), "b": jnp.sign(tree["b"])}


NOISES = {
    "gumbel": (PT.Gumbel(), optax.perturbations.Gumbel()),
    "normal": (PT.Normal(), optax.perturbations.Normal()),
    # Optax's distribution objects work in eqopt too.
    "optax_normal": (optax.perturbations.Normal(), optax.perturbations.Normal()),
}


@dataclasses.dataclass(frozen=True)
class Case:
    fun: Callable
    noise: str
    num_samples: int = 100
    sigma: float = 0.5
    use_baseline: bool = True
    build: Callable = two_leaves
    second_order: bool = False  # also compare d²/dσ² (DiCE's higher derivatives)


CASES = {
    "relu_sum_gumbel": Case(relu_sum, "gumbel", second_order=True),
    "argmax_and_sign_normal_no_baseline": Case(
        argmax_and_sign, "normal", sigma=0.3, use_baseline=False
    ),
}


# Any key implementation works the same here; `unsafe_rbg` compiles about 2.5x faster
# than threefry on the CPU (whose unrolled rounds dominate these small test programs).
_KEY = jr.key(1, impl="unsafe_rbg")


def _make(lib, case, sigma):
    noise = NOISES[case.noise][0 if lib is PT else 1]
    return lib.make_perturbed_fun(
        case.fun, case.num_samples, sigma, noise, case.use_baseline
    )


def _results(lib, case, key, x, weights):
    """Value, gradients in `x` and `sigma` of `<weights, f_sigma(x)>`, and d²/dσ²."""

    def objective(x, sigma):
        out = _make(lib, case, sigma)(key, x)
        pairs = zip(jax.tree.leaves(weights), jax.tree.leaves(out))
        return sum(jnp.vdot(w, o) for w, o in pairs), out

    sigma = jnp.asarray(case.sigma)
    grads, value = jax.grad(objective, argnums=(0, 1), has_aux=True)(x, sigma)
    results = {"value": value, "grads": grads}
    if case.second_order:
        results["hessian"] = jax.hessian(lambda *a: objective(*a)[0], argnums=1)(
            x, sigma
        )
    return results


@pytest.mark.parametrize("name", CASES)
def test_matches_optax(name):
    """Same keys, same samples: same values and derivatives, of first and second order."""
    case = CASES[name]
    x = case.build(jr.key(0))
    key = _KEY
    value = jax.eval_shape(_make(PT, case, case.sigma), key, x)
    weights = jax.tree.map(lambda v: jr.normal(jr.key(2), v.shape), value)

    @jax.jit
    def both(key, x, weights):
        ours = _results(PT, case, key, x, weights)
        with jax.numpy_dtype_promotion("standard"):
            return ours, _results(optax.perturbations, case, key, x, weights)

    ours, theirs = both(key, x, weights)
    assert tree_isfinite(ours)
    assert_trees_allclose(ours, theirs)


def test_sigma_is_a_differentiable_leaf_and_changing_it_does_not_recompile():
    """Also: Optax's own noise objects work in eqopt's `make_perturbed_fun`."""
    case = dataclasses.replace(
        CASES["argmax_and_sign_normal_no_baseline"], noise="optax_normal"
    )
    perturbed = _make(PT, case, case.sigma)
    assert perturbed.sigma.shape == ()
    assert jax.tree.leaves(eqx.filter(perturbed, eqx.is_array)) == [perturbed.sigma]
    x = two_leaves(jr.key(0))

    def objective(perturbed):
        return jnp.sum(perturbed(_KEY, x)["w"] * jnp.arange(12.0))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def sigma_grads(perturbed):
        ours = eqx.filter_grad(objective)(perturbed).sigma
        with jax.numpy_dtype_promotion("standard"):
            theirs = jax.grad(
                lambda s: objective(
                    lambda k, x: _make(optax.perturbations, case, s)(k, x)
                )
            )(perturbed.sigma)
        return ours, theirs

    ours, theirs = sigma_grads(perturbed)
    assert_trees_allclose(ours, theirs)
    sigma_grads(
        eqx.tree_at(lambda p: p.sigma, perturbed, jnp.asarray(0.7))
    )  # no retrace


@pytest.mark.parametrize("name", ["gumbel", "normal"])
@pytest.mark.parametrize(
    "shape, dtype", [((3, 4), jnp.float32), ((), jnp.bfloat16)], ids=["f32", "bf16"]
)
def test_noise_matches_optax(name, shape, dtype):
    ours, theirs = NOISES[name]
    sample = ours.sample(jr.key(3), shape, dtype)
    assert_trees_allclose(sample, theirs.sample(jr.key(3), shape, dtype))
    with jax.numpy_dtype_promotion("standard"):
        expected = theirs.log_prob(sample)
    assert_trees_allclose(ours.log_prob(sample), expected)


def test_noise_distributions_are_modules():
    for cls in (PT.Normal, PT.Gumbel):
        assert issubclass(cls, PT.AbstractNoiseDistribution)
        assert issubclass(cls, eqx.Module)


def test_covers_optax_namespace():
    public = {n for n in dir(optax.perturbations) if not n.startswith("_")}
    assert public == {"make_perturbed_fun", "Gumbel", "Normal"} <= set(dir(PT))


def test_signature_matches_optax():
    def describe(fn):
        params = inspect.signature(fn).parameters.values()
        # `noise` defaults to each library's own `Gumbel()`: compare the class names.
        return [
            (
                p.name,
                p.kind,
                type(p.default).__name__ if p.name == "noise" else p.default,
            )
            for p in params
        ]

    assert describe(PT.make_perturbed_fun) == describe(
        optax.perturbations.make_perturbed_fun
    )
    for name in ("Normal", "Gumbel"):
        for method in ("sample", "log_prob"):
            ours = inspect.signature(getattr(getattr(PT, name), method))
            theirs = inspect.signature(
                getattr(getattr(optax.perturbations, name), method)
            )
            assert [(p.name, p.default) for p in ours.parameters.values()] == [
                (p.name, p.default) for p in theirs.parameters.values()
            ]


def test_batch_of_keys_names_the_argument():
    perturbed = PT.make_perturbed_fun(relu_sum, 10)
    with pytest.raises(TypeCheckError, match="parameter 'key'"):
        perturbed(jr.split(jr.key(0), 3), random_tree(jr.key(1)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), r"`make_perturbed_fun\(num_samples=...\)` must be a"),
        (dict(sigma=-0.1), r"`make_perturbed_fun\(sigma=...\)` must be in \(0, inf\)"),
    ],
    ids=["num_samples", "sigma"],
)
def test_out_of_range_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PT.make_perturbed_fun(relu_sum, **kwargs)


def test_reachable_from_the_top_level():
    assert eqopt.perturbations.make_perturbed_fun is PT.make_perturbed_fun
