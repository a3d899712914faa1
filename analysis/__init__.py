"""pandas analysis of k6 results: load, compare, judge validity, report."""
