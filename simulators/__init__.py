"""Stand-ins for scales, relay boards, scanners and the cylinder registry, speaking real protocols."""
