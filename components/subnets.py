"""The VPC's subnet layout: sizes, and where awsx places them (so a CIDR that cannot hold them is
refused before anything is created)."""

from __future__ import annotations

import ipaddress
import math

PRIVATE_MASK = 19  # 8,192 addresses per AZ: the VPC CNI gives every pod an address of its own
PUBLIC_MASK = 22  # NAT gateways and nothing else


def subnet_layout(cidr: str, zones: int, private_mask: int = PRIVATE_MASK,
                  public_mask: int = PUBLIC_MASK) -> list[tuple[str, ipaddress.IPv4Network]]:
    """The subnets awsx's default ("Legacy") strategy carves out of ``cidr``, as (type, network).

    awsx/ec2/subnetDistributorLegacy.ts: the VPC is split evenly into nextPow2(zones) blocks, one
    per AZ; in each, the private subnet starts at the block's base and the public one at the next
    private-sized boundary after it. Raises ValueError when that layout leaves its AZ's block (the
    subnets would overlap the next AZ's or leave the VPC)."""
    vpc = ipaddress.IPv4Network(cidr)
    zone_prefix = vpc.prefixlen + math.ceil(math.log2(zones))
    blocks = list(vpc.subnets(new_prefix=zone_prefix))[:zones] if zone_prefix <= private_mask else []
    if not blocks:
        raise ValueError(f"{cidr} gives each of {zones} availability zones a /{zone_prefix}, smaller than "
                         f"the /{private_mask} private subnet")
    layout: list[tuple[str, ipaddress.IPv4Network]] = []
    for block in blocks:
        private = ipaddress.IPv4Network((block.network_address, private_mask))
        public = ipaddress.IPv4Network((int(private.network_address) + private.num_addresses, public_mask))
        if not public.subnet_of(block):
            raise ValueError(f"{cidr} gives each of {zones} availability zones a /{zone_prefix}; its /{private_mask} "
                             f"private and /{public_mask} public subnets need a /{private_mask - 1}")
        layout += [("private", private), ("public", public)]
    return layout
