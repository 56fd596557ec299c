"""Budget and health alerts: the rules, the alert log (one row per firing, its history and
deliveries), the alert texts in English and Chinese, and a run of all rules."""
