"""What each command does once the run lifecycle has composed its config and made its run folder."""
