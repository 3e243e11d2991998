"""LEADER (Liu et al., arXiv 2402.02803): LLM teacher, distilled student, the plain-LLM baseline and LEADER's CLI verbs, registered by `leader/plugin.py` (bench.plugins)."""
