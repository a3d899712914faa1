"""k6 scripts rendered from Jinja templates, scenarios and the prompt generator."""
