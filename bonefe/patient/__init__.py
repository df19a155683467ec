"""One patient, several bones: patient.yaml, the runs of each bone and the patient report (docs/patient.md)."""
