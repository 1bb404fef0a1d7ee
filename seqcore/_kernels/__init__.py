"""Cython kernels: numerics only (see DESIGN.md section 1)."""
