"""Pulumi ComponentResources of the AWS benchmark environment, one concern per module."""
