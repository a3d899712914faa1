"""One run, whatever the engine: the plan, the loop that measures the rig and every target's session,
the engine protocol the loop drives, and what the loop needs from the machine (interrupts, versions)."""
