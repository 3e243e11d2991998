"""LEADER (Liu et al., arXiv 2402.02803): LLM teacher, distilled student. Models arrive in later work."""
