"""The caching pool for large CPU tensors (csrc/common/cpu_pool.cpp, fastseg.memory): inside
`cpu_pool()` allocations of 1 MiB or more reuse freed blocks (split and merged), already faulted
in; everything else is untouched; Mask R-CNN's eval forward on CPU uses it."""
import sys
import threading

import pytest
import torch

import helpers
from helpers_subprocess import stdout_words_with_env
from fastseg import memory

pytestmark = helpers.needs_ops

MIB = 1 << 20


def floats(nbytes):
    return torch.empty(nbytes // 4)


def delta(before):
    after = memory.cpu_pool_stats()
    return {k: after[k] - before[k] for k in after}


def test_a_freed_block_is_reused_inside_the_pool_only():
    with memory.cpu_pool():
        a = floats(4 * MIB)
        ptr = a.data_ptr()
        del a
        before = memory.cpu_pool_stats()
        b = floats(4 * MIB)
        assert b.data_ptr() == ptr
        assert delta(before)["hits"] == 1
    before = memory.cpu_pool_stats()
    c = floats(4 * MIB)
    small_in_pool = None
    with memory.cpu_pool():
        small_in_pool = floats(MIB - 64)  # below the 1 MiB floor: not pooled
    assert delta(before) == {k: 0 for k in before}
    del b, c, small_in_pool


def test_nested_switches_restore_the_previous_setting():
    def pooled():
        before = memory.cpu_pool_stats()
        t = floats(2 * MIB)
        used = delta(before)
        del t
        return used["hits"] + used["misses"] == 1

    with memory.cpu_pool():
        assert pooled()
        with memory.cpu_pool(False):
            assert not pooled()
        assert pooled()
    assert not pooled()


def test_a_block_freed_on_another_thread_returns_to_the_pool():
    with memory.cpu_pool():
        t = floats(2 * MIB)
    before = memory.cpu_pool_stats()
    holder = [t]
    del t
    worker = threading.Thread(target=holder.clear)
    worker.start()
    worker.join()
    d = delta(before)
    assert d["in_use_bytes"] == -2 * MIB and d["free_bytes"] >= 2 * MIB


def test_the_switch_is_per_thread():
    seen = []

    def other():
        before = memory.cpu_pool_stats()
        t = floats(2 * MIB)
        seen.append(delta(before))
        del t

    with memory.cpu_pool():
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert seen[0]["hits"] + seen[0]["misses"] == 0


def test_threads_allocating_and_freeing_at_once_never_share_a_block():
    """Two threads cut, fill, check and free pooled blocks of mixed sizes at the same time (the
    frees merge neighbours under the pool's lock); a block handed out twice would show up as a
    value written by the other thread."""
    errors = []

    def worker(value):
        g = torch.Generator().manual_seed(value)
        live = []
        with memory.cpu_pool():
            for step in range(150):
                t = floats(int(torch.randint(1, 6, (), generator=g)) * MIB + 4096 * step)
                t.fill_(float(value))
                live.append(t)
                if len(live) > 3:
                    live.pop(int(torch.randint(0, len(live), (), generator=g)))
                if not all(bool((x == value).all()) for x in live):
                    errors.append(value)
                    return

    threads = [threading.Thread(target=worker, args=(v,)) for v in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# Page faults of touching a fresh 64 MB tensor (over glibc's largest mmap threshold, so freed
# memory goes back to the system) a second time, outside and inside the pool; then the stats with
# the pool switched off by the environment; what the pool holds before and after empty_cpu_pool().
CHILD = r"""
import resource, torch
from fastseg import memory

def second_fill_faults(pooled):
    with memory.cpu_pool(pooled):
        torch.empty(1 << 24).fill_(1.0)
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(1 << 24).fill_(1.0)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0

outside, inside = second_fill_faults(False), second_fill_faults(True)
stats = memory.cpu_pool_stats()
memory.empty_cpu_pool()
print(outside, inside, stats["misses"], stats["reserved_bytes"], memory.cpu_pool_stats()["reserved_bytes"])
"""


def _run(code, pool_env):
    return stdout_words_with_env(code, "FASTSEG_CPU_POOL", pool_env)


def _child(pool_env):
    return [int(v) for v in _run(CHILD, pool_env)]


# In a fresh process (no pooled tensor of other tests alive): an 8 MiB block, freed, then cut
# into 3 and 4 MiB pieces, which merge back into one 8 MiB block when freed.
SPLIT_CHILD = r"""
import torch
from fastseg import memory
MIB = 1 << 20
with memory.cpu_pool():
    a = torch.empty(2 * MIB)
    base = a.data_ptr()
    del a
    b, c = torch.empty(3 * MIB // 4), torch.empty(MIB)
    inside = [base <= t.data_ptr() and t.data_ptr() + t.nbytes <= base + 8 * MIB for t in (b, c)]
    b.fill_(1.0)
    c.fill_(2.0)
    separate = bool((b == 1).all()) and bool((c == 2).all())
    del b, c
    misses = memory.cpu_pool_stats()["misses"]
    d = torch.empty(2 * MIB)
    print(all(inside), separate, d.data_ptr() == base, memory.cpu_pool_stats()["misses"] - misses)
"""


# A request no free block fits gives back the wholly free segments too small for it (here the
# 2 MiB one) before taking a new segment; the byte counts add up at every step.
EVICT_CHILD = r"""
import torch
from fastseg import memory
MIB = 1 << 20
def consistent():
    s = memory.cpu_pool_stats()
    return s["reserved_bytes"] == s["free_bytes"] + s["in_use_bytes"]
with memory.cpu_pool():
    a = torch.empty(MIB // 2)
    del a
    ok = [consistent(), memory.cpu_pool_stats()["reserved_bytes"] == 2 * MIB]
    b = torch.empty(2 * MIB)
    ok += [consistent(), memory.cpu_pool_stats()["reserved_bytes"] == 8 * MIB]
    c = torch.empty(3 * MIB // 4)
    s = memory.cpu_pool_stats()
    ok += [consistent(), s["misses"] == 3, s["in_use_bytes"] == 11 * MIB]
    del b, c
    ok += [consistent(), memory.cpu_pool_stats()["in_use_bytes"] == 0]
    memory.empty_cpu_pool()
    ok.append(memory.cpu_pool_stats()["reserved_bytes"] == 0)
print(ok)
"""


def test_a_miss_gives_back_smaller_free_segments_and_the_counts_add_up():
    assert _run(EVICT_CHILD, None) == ["[True,"] + ["True,"] * 8 + ["True]"]


def test_blocks_split_and_merge_back():
    assert _run(SPLIT_CHILD, None) == ["True", "True", "True", "0"]




@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts page faults of glibc's mmap threshold")
def test_reused_blocks_are_not_faulted_in_again():
    outside, inside, misses, reserved, emptied = _child(None)
    assert outside >= 32  # 16k pages of 4 KiB; 32 with transparent huge pages always on
    assert inside <= outside // 10 and misses == 1
    assert reserved == 64 * MIB and emptied == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts page faults of glibc's mmap threshold")
def test_fastseg_cpu_pool_0_turns_it_off():
    outside, inside, misses, reserved, _ = _child("0")
    assert outside >= 32 and inside * 2 > outside and misses == 0 and reserved == 0


def test_pool_applies_only_to_eager_cpu_tensors():
    x = torch.rand(3, 8, 8)
    assert memory.pool_applies([x])
    assert not memory.pool_applies([])
    assert not memory.pool_applies([x.to("meta")])
    assert not memory.pool_applies([torch.nn.Parameter(x)])
