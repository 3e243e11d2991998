"""LEADER's own `bench` verbs (registered by leader/plugin.py): prompts, teacher-probe."""
