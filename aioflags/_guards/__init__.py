"""Guarded rollouts (issue 98): a percentage rollout's arms compared as requests end."""
