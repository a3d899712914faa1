"""The VPC: public and private subnets over several AZs, NAT for the private ones, and the subnet
tags the AWS Load Balancer Controller uses to place public and internal load balancers."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_awsx as awsx

from components.subnets import PRIVATE_MASK, PUBLIC_MASK


@dataclass(frozen=True)
class NetworkArgs:
    cidr: str
    availability_zones: int
    nat: str  # "single" | "one-per-az"
    cluster_name: str


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:Network", name, None, opts)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        vpc = awsx.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            number_of_availability_zones=args.availability_zones,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(
                # One NAT is the cheap default; one per AZ survives an AZ outage.
                strategy=awsx.ec2.NatGatewayStrategy.SINGLE if args.nat == "single"
                else awsx.ec2.NatGatewayStrategy.ONE_PER_AZ,
            ),
            subnet_specs=[
                awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PUBLIC, cidr_mask=PUBLIC_MASK,
                                        tags={"kubernetes.io/role/elb": "1", **cluster_tag}),
                awsx.ec2.SubnetSpecArgs(type=awsx.ec2.SubnetType.PRIVATE, cidr_mask=PRIVATE_MASK,
                                        tags={"kubernetes.io/role/internal-elb": "1", **cluster_tag}),
            ],
            tags={"Name": f"{args.cluster_name}-vpc"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vpc_id = vpc.vpc_id
        self.public_subnet_ids = vpc.public_subnet_ids
        self.private_subnet_ids = vpc.private_subnet_ids
        self.register_outputs({"vpc_id": self.vpc_id, "public_subnet_ids": self.public_subnet_ids,
                               "private_subnet_ids": self.private_subnet_ids})
