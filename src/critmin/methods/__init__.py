"""Named, cited criticality methods and the priority list."""
