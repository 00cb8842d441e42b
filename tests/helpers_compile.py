"""Test helpers for PyTorch's op machinery: `torch.library.opcheck` (`run_opcheck`),
`torch.compile` (`check_compile`) and `torch.export` (`check_export`, `graph_targets`).

Re-exported by helpers.py.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from helpers_tensors import assert_same, tol, torch_gen

OPCHECK_UTILS: Tuple[str, ...] = ("test_schema", "test_autograd_registration", "test_faketensor",
                                  "test_aot_dispatch_dynamic")


def run_opcheck(op, args: Sequence[Any], kwargs: Optional[Dict[str, Any]] = None,
                test_utils: Sequence[str] = OPCHECK_UTILS) -> Dict[str, str]:
    """`torch.library.opcheck` (public API); fails the test on any unsuccessful check."""
    result = torch.library.opcheck(op, tuple(args), kwargs or {}, test_utils=tuple(test_utils),
                                   raise_exception=True)
    bad = {k: v for k, v in result.items() if v != "SUCCESS"}
    assert not bad, f"opcheck failed for {op}: {bad}"
    return result


def _tree_tensors(x) -> List[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tree_tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tree_tensors(v)]
    return []


def _clone_args(args):
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            c = a.detach().clone(memory_format=torch.preserve_format)
            c.requires_grad_(a.requires_grad)
            out.append(c)
        else:
            out.append(a)
    return out


def _compare_outputs(actual, expected, exact: bool, what: str) -> None:
    a, e = _tree_tensors(actual), _tree_tensors(expected)
    assert len(a) == len(e), f"{what}: {len(a)} outputs vs {len(e)}"
    for i, (x, y) in enumerate(zip(a, e)):
        if exact:
            assert_same(x.detach(), y.detach(), f"{what}: output {i}")
        else:
            torch.testing.assert_close(x.detach(), y.detach(), equal_nan=True, **tol(y.dtype) if y.is_floating_point()
                                       else dict(atol=0, rtol=0), msg=lambda m: f"{what}: output {i}\n{m}")


def _grads_of(fn, args, outputs_seed: int = 0):
    """Runs fn on clones of args, backpropagates a fixed random cotangent through every floating
    output, returns (outputs, grads of the args that require grad)."""
    args = _clone_args(args)
    out = fn(*args)
    outs = [t for t in _tree_tensors(out) if t.is_floating_point() and t.requires_grad]
    leaves = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
    if not outs or not leaves:
        return out, []
    g = torch_gen(outputs_seed, "cpu")
    cots = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype).to(o.device) for o in outs]
    grads = torch.autograd.grad(outs, leaves, cots, allow_unused=True)
    return out, [gr if gr is not None else torch.zeros_like(l) for gr, l in zip(grads, leaves)]


def check_compile(fn: Callable, *args, backend: str = "aot_eager", dynamic: Optional[bool] = False,
                  exact: bool = False, check_grad: bool = True):
    """`torch.compile(fn, fullgraph=True)` must trace without graph breaks and match eager (outputs,
    and gradients of the args that require grad). Returns the compiled outputs.

    backend="inductor" runs the real compiler (slow on CPU: C++ codegen, tens of seconds);
    "aot_eager" traces through dynamo + AOTAutograd with fake tensors, which is what catches
    missing fake kernels and graph breaks.
    """
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend=backend, dynamic=dynamic)
    if check_grad:
        exp, exp_g = _grads_of(fn, args)
        act, act_g = _grads_of(compiled, args)
        _compare_outputs(act, exp, exact, "torch.compile forward")
        _compare_outputs(act_g, exp_g, exact, "torch.compile backward")
    else:
        with torch.no_grad():
            exp = fn(*_clone_args(args))
            act = compiled(*_clone_args(args))
        _compare_outputs(act, exp, exact, "torch.compile forward")
    return act


def check_export(module: torch.nn.Module, args: Tuple[Any, ...], dynamic_shapes=None, exact: bool = True,
                 more_args: Iterable[Tuple[Any, ...]] = ()):
    """`torch.export.export(module, args)`; `ep.module()(*a)` must equal `module(*a)` for `args` and
    every tuple in `more_args` (e.g. another batch size when `dynamic_shapes` allows it).
    Returns the ExportedProgram."""
    ep = torch.export.export(module, tuple(args), dynamic_shapes=dynamic_shapes)
    runnable = ep.module()
    for a in (tuple(args), *more_args):
        with torch.no_grad():
            exp = module(*a)
            act = runnable(*a)
        _compare_outputs(act, exp, exact, "torch.export")
    return ep


def graph_targets(ep) -> List[str]:
    """Names of the call_function targets of an ExportedProgram's graph."""
    return [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
