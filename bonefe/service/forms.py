"""The request form: what the model needs of the patient, and the two images."""

from django import forms

from bonefe.service.models import RiskRequest


class RequestForm(forms.ModelForm):
    ct = forms.FileField(label="CT (zip of one DICOM series, or NIfTI .nii/.nii.gz)")
    labels = forms.FileField(label="Label map (NIfTI from 3D Slicer or TotalSegmentator: bone 1, lytic 2, blastic 3)")

    class Meta:
        model = RiskRequest
        fields = ["bone", "side", "body_mass_kg", "pain", "lesion_type"]
        labels = {"body_mass_kg": "Body mass (kg)", "pain": "Pain (Mirels), if known",
                  "lesion_type": "Lesion type, if known"}
        widgets = {"bone": forms.Select(choices=[("femur", "femur")])}

    def clean_body_mass_kg(self):
        mass = self.cleaned_data["body_mass_kg"]
        if not 20 <= mass <= 300:
            raise forms.ValidationError("body mass must be between 20 and 300 kg")
        return mass

    def clean_bone(self):
        if self.cleaned_data["bone"] != "femur":
            raise forms.ValidationError("only the femur is supported for now")
        return "femur"
