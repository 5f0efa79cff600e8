"""Delivery into the EHR: the local inbox now; FHIR, HL7 v2/MLLP and the editor bridge later."""
