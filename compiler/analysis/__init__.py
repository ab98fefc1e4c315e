"""Analyses over the model: the BGP peering graph and its redundancy, later reachability and lint.

They read the model only and produce findings and derived data that backends render;
no backend computes anything an analysis should.
"""
