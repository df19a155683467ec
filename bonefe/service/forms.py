"""The request form: the bone (femur or humerus with its side, or a vertebra with its level), what
the model needs of the patient, and the two images."""

from django import forms

from bonefe.service.models import SIDED, Bone, RiskRequest


class RequestForm(forms.ModelForm):
    ct = forms.FileField(label="CT (zip of one DICOM series, or NIfTI .nii/.nii.gz)")
    labels = forms.FileField(label="Label map (NIfTI from 3D Slicer or TotalSegmentator: bone 1, lytic 2, blastic 3)")

    class Meta:
        model = RiskRequest
        fields = ["bone", "side", "level", "body_mass_kg", "pain", "lesion_type"]
        labels = {"side": "Side (femur and humerus)", "level": "Level (vertebra), e.g. L1",
                  "body_mass_kg": "Body mass (kg)", "pain": "Pain (Mirels: femur and humerus), if known",
                  "lesion_type": "Lesion type, if known"}

    def clean_body_mass_kg(self):
        mass = self.cleaned_data["body_mass_kg"]
        if not 20 <= mass <= 300:
            raise forms.ValidationError("body mass must be between 20 and 300 kg")
        return mass

    def clean(self):
        """Side for the femur and humerus, level for the vertebra, never the other one: one message each."""
        data = super().clean()
        bone, side, level = data.get("bone"), data.get("side"), data.get("level")
        if bone in SIDED:
            if not side:
                self.add_error("side", f"choose the side of the {bone}: left or right")
            if level:
                self.add_error("level", f"a {bone} has no spinal level: leave the level empty")
        elif bone == Bone.VERTEBRA:
            if not level:
                self.add_error("level", "choose the level of the vertebra, e.g. L1")
            if side:
                self.add_error("side", "a vertebra is requested by its level, not a side: leave the side empty")
            if data.get("pain"):
                self.add_error("pain", "the Mirels pain score is for the femur and humerus: leave it empty for a vertebra")
        return data
