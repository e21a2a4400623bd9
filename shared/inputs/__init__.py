"""Data and vision inputs: reading files and hub datasets with errors that name the file and row, the data
report, the sample-data cache, and the vision tasks' shared options, image checks and transforms."""
