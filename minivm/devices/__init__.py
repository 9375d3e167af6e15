"""Device models, one per module.  Every model has the shape of device.Device."""
