"""For people and monitoring: summary, metrics, the HTML report and its statistics."""
