"""The SCIM 2.0 protocol layer: schemas, errors, filters, PATCH and representation."""
