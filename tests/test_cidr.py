import pytest

from awsprac.engine.cidr import SubnetSplitError, split


def test_spec_split_of_a_16_into_four_18s_in_order():
    assert split("10.0.0.0/16", 4) == ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18", "10.0.192.0/18"]


def test_three_azs_round_up_to_eight_blocks_and_never_overlap():
    import ipaddress

    blocks = split("10.1.0.0/16", 6)
    assert blocks[:2] == ["10.1.0.0/19", "10.1.32.0/19"] and len(blocks) == 6
    nets = [ipaddress.ip_network(b) for b in blocks]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_one_subnet_takes_the_whole_block():
    assert split("192.168.0.0/24", 1) == ["192.168.0.0/24"]


def test_block_too_small_names_the_smallest_subnet():
    with pytest.raises(SubnetSplitError, match=r"each would be a /29, and AWS's smallest subnet is a /28"):
        split("10.0.0.0/27", 4)
