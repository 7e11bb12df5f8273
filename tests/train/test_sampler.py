from minddrive.train.trainer import ResumableBatchSampler


def test_order_is_a_function_of_seed_and_epoch():
    a = ResumableBatchSampler(50, 4, seed=3)
    b = ResumableBatchSampler(50, 4, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    b.set_epoch(2)
    assert list(a) != list(b)
    assert len(list(a)) == 12 and all(len(x) == 4 for x in a)


def test_skip_resumes_mid_epoch():
    s = ResumableBatchSampler(50, 4, seed=3)
    s.set_epoch(5)
    full = list(s)
    s.set_epoch(5, skip_batches=7)
    assert list(s) == full[7:]


def test_ranks_take_disjoint_equal_shares():
    ranks = [ResumableBatchSampler(37, 3, seed=0, rank=r, world_size=2) for r in range(2)]
    batches = [list(r) for r in ranks]
    assert len(batches[0]) == len(batches[1]) == 6
    flat = [set(i for b in rb for i in b) for rb in batches]
    assert not flat[0] & flat[1]
    assert len(flat[0]) == len(flat[1]) == 18
