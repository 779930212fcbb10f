"""The EHR door: an HL7 CDS Hooks 2.0 service over FHIR R4 input, authenticated by signed JWTs.

`router` (discovery, the service, feedback), `auth` (the JWT check), `fhir` (FHIR -> patient
record), `fetch` (the `fhirServer` reads), `cards` (prediction -> card), `feedback`.
"""
