"""The toolkit under every floor: config parsing and ranges, the command-line entry points, devices and
processes (accelerate), optional extras, and the packaged offline backbones."""
