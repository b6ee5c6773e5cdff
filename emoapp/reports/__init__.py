"""Human-readable reports made from analysis results (the call report)."""
