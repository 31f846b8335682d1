#!/usr/bin/env python3
# Writes the demo data in this folder. Deterministic (fixed seed); standard library only.
# Run it again after changing a scenario: python3 examples/demo/generate.py
import json, random, os
random.seed(42)
SUB="6f1c2c3d-1111-4a5b-9c8d-0a1b2c3d4e5f"; TEN="72f988bf-86f1-41af-91ab-2d7cd011db47"
RG=f"/subscriptions/{SUB}/resourceGroups/rg-platform-prod"
AKS=f"{RG}/providers/Microsoft.ContainerService/managedClusters/aks-prod-weu"
ACR=f"{RG}/providers/Microsoft.ContainerRegistry/registries/acrplatformprod"
UAMI=f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-payments-api"
FIC=f"{UAMI}/federatedIdentityCredentials/fic-payments-api"
ISSUER=f"https://westeurope.oic.prod-aks.azure.com/{TEN}/0f4e1d2c-aaaa-bbbb-cccc-1234567890ab/"
ADMINS="c0ffee00-1111-2222-3333-444455556666"; KUBELET="5e6f7a8b-0000-4000-8000-00000000a001"
CI_SP="1d2e3f40-0000-4000-8000-00000000c1c1"; CI_APP="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
MALLORY="6d6d6d6d-0000-4000-8000-00000000dead"
def gid(): return "%08x-%04x-4%03x-8%03x-%012x"%(random.getrandbits(32),random.getrandbits(16),random.getrandbits(12),random.getrandbits(12),random.getrandbits(48))
PEOPLE={
 "alice":dict(upn="alice@contoso.com",oid="a11ce000-0000-4000-8000-0000000a11ce",ip="203.0.113.10",app="04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
 "ci":dict(upn=None,oid=CI_SP,ip="20.50.2.3",app=CI_APP),
 "mallory":dict(upn="mallory@contoso.com",oid=MALLORY,ip="198.51.100.77",app="04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
 "bob":dict(upn="bob@contoso.com",oid="b0b00000-0000-4000-8000-000000000b0b",ip="203.0.113.44",app="04b07795-8ddb-461a-bbee-02f9e1bf7b46"),
}
def rec(who, time, op, resource, result, corr, category="Administrative", req=None, resp=None, status=None):
    p=PEOPLE[who]
    claims={"aud":"https://management.core.windows.net/","iss":f"https://sts.windows.net/{TEN}/","appid":p["app"],"appidacr":"0","ipaddr":p["ip"],
            "http://schemas.microsoft.com/identity/claims/objectidentifier":p["oid"],"http://schemas.microsoft.com/identity/claims/tenantid":TEN,"ver":"1.0"}
    if p["upn"]:
        claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"]=p["upn"]; claims["name"]=p["upn"].split("@")[0].title()
    props={"statusCode":status or {"Start":"Created","Accept":"Accepted","Success":"OK","Failure":"Forbidden"}.get(result,"OK"),
           "serviceRequestId":gid(),"eventCategory":category,"entity":resource,"message":op.lower() if "/" in op else op,"hierarchy":f"{TEN}/{SUB}"}
    if req is not None: props["requestbody"]=json.dumps(req)
    if resp is not None: props["responseBody"]=json.dumps(resp)
    return {"time":time,"resourceId":resource.upper(),"operationName":op.upper(),"category":category,"resultType":result,
            "resultSignature":{"Start":"Started.","Accept":"Accepted.Created","Success":"Succeeded.OK","Failure":"Failed.Forbidden"}.get(result,""),
            "durationMs":random.randint(0,4000),"callerIpAddress":p["ip"],"correlationId":corr,
            "identity":{"authorization":{"scope":resource,"action":op,"evidence":{"role":"Owner" if who!="ci" else "Contributor","roleAssignmentScope":f"/subscriptions/{SUB}","roleAssignmentId":gid().replace("-",""),"roleDefinitionId":"8e3af657a8ff443ca75c2fe8c4bcb635","principalId":p["oid"].replace("-",""),"principalType":"User" if p["upn"] else "ServicePrincipal"}},"claims":claims},
            "level":"Information","location":"global","properties":props}
def t(day,h,m,s,frac=None): return "2026-11-%02dT%02d:%02d:%02d.%07dZ"%(day,h,m,s,frac if frac is not None else random.randint(0,9999999))
def phases(who, day, h, m, op, resource, req=None, resp=None, fail=False, corr=None):
    corr=corr or gid()
    out=[rec(who,t(day,h,m,1),op,resource,"Start",corr,req=req)]
    if fail:
        out.append(rec(who,t(day,h,m,3),op,resource,"Failure",corr)); return out
    out.append(rec(who,t(day,h,m,2),op,resource,"Accept",corr))
    out.append(rec(who,t(day,h,m,4),op,resource,"Success",corr,resp=resp))
    return out
def ra_body(role, principal, ptype, scope, pascal=False, aid=None):
    rd=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    if pascal: return {"Id":aid,"Properties":{"PrincipalId":principal,"PrincipalType":ptype,"RoleDefinitionId":rd,"Scope":scope}}
    return {"properties":{"roleDefinitionId":rd,"principalId":principal,"principalType":ptype,"scope":scope}}
def cluster_body(local_off=True):
    return {"location":"westeurope","identity":{"type":"SystemAssigned"},"sku":{"name":"Base","tier":"Standard"},
      "properties":{"kubernetesVersion":"1.33.2","dnsPrefix":"aks-prod-weu","enableRBAC":True,"disableLocalAccounts":local_off,
        "aadProfile":{"managed":True,"enableAzureRBAC":True,"adminGroupObjectIDs":[ADMINS],"tenantID":TEN},
        "servicePrincipalProfile":{"clientId":"msi"},"oidcIssuerProfile":{"enabled":True},"securityProfile":{"workloadIdentity":{"enabled":True}},
        "identityProfile":{"kubeletidentity":{"resourceId":f"/subscriptions/{SUB}/resourceGroups/MC_rg-platform-prod_aks-prod-weu_westeurope/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-prod-weu-agentpool","clientId":"5e6f7a8b-0000-4000-8000-00000000a002","objectId":KUBELET}},
        "agentPoolProfiles":[{"name":"system","count":3,"vmSize":"Standard_D4s_v5","mode":"System","osType":"Linux","orchestratorVersion":"1.33.2"}],
        "networkProfile":{"networkPlugin":"azure","networkPolicy":"cilium","loadBalancerSku":"standard"}}}
NOISE=[("Microsoft.Storage/storageAccounts/write","Administrative",f"{RG}/providers/Microsoft.Storage/storageAccounts/stplatformlogs"),
 ("Microsoft.Compute/virtualMachines/start/action","Administrative",f"/subscriptions/{SUB}/resourceGroups/rg-jumpbox/providers/Microsoft.Compute/virtualMachines/vm-jump-01"),
 ("Microsoft.Web/sites/config/write","Administrative",f"/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Web/sites/status-page/config/appsettings"),
 ("Microsoft.Insights/diagnosticSettings/write","Administrative",f"{AKS}/providers/microsoft.insights/diagnosticSettings/to-eventhub"),
 ("Microsoft.KeyVault/vaults/write","Administrative",f"{RG}/providers/Microsoft.KeyVault/vaults/kv-platform-prod"),
 ("Microsoft.Network/networkSecurityGroups/write","Administrative",f"{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg-aks-nodes")]
def noise(day, n):
    out=[]
    for i in range(n):
        h=random.randint(7,18); m=random.randint(0,59)
        k=random.random()
        if k<0.15:
            out.append({"time":t(day,h,m,random.randint(0,59)),"resourceId":f"/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG-JUMPBOX/PROVIDERS/MICROSOFT.COMPUTE/VIRTUALMACHINES/VM-JUMP-01","operationName":"Microsoft.Resourcehealth/healthevent/Activated/action","category":"ResourceHealth","resultType":"Active","correlationId":gid(),"level":"Critical","properties":{"eventCategory":"ResourceHealth","eventProperties":{"title":"Virtual machine degraded","cause":"PlatformInitiated","currentHealthStatus":"Degraded"}}})
            continue
        op,cat,res=random.choice(NOISE); who=random.choice(["alice","ci","bob"])
        out.extend(phases(who,day,h,m,op,res,req={"properties":{"note":"unrelated"}}) if random.random()<0.5 else [rec(who,t(day,h,m,5),op,res,"Success",gid())])
    return out
def envelopes(records, per):
    return "\n".join(json.dumps({"records":records[i:i+per]}) for i in range(0,len(records),per))+"\n"

# ---------- day 1 ----------
A1=f"{AKS}/providers/Microsoft.Authorization/roleAssignments/3c9f1a2b-0001-4a00-8000-000000000001"
A2=f"{ACR}/providers/Microsoft.Authorization/roleAssignments/3c9f1a2b-0002-4a00-8000-000000000002"
A3=f"{RG}/providers/Microsoft.Authorization/roleAssignments/3c9f1a2b-0003-4a00-8000-000000000003"
RA="Microsoft.Authorization/roleAssignments/write"
day1=[]
day1+=phases("alice",2,9,14,RA,A1,req=ra_body("b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",ADMINS,"Group",AKS))
day1+=phases("alice",2,9,20,RA,A2,req=ra_body("7f951dda-4ed3-4680-a7ca-43fe172d538d",KUBELET,"ServicePrincipal",ACR,pascal=True,aid="3c9f1a2b-0002-4a00-8000-000000000002"))
day1+=phases("alice",2,9,25,RA,A3,req=ra_body("b24988ac-6180-42a0-ab88-20f7382dd24c",CI_SP,"ServicePrincipal",RG))
day1+=phases("ci",2,10,2,"Microsoft.ContainerService/managedClusters/write",AKS,req=cluster_body(True))
day1+=phases("ci",2,10,30,"Microsoft.ManagedIdentity/userAssignedIdentities/write",UAMI,req={"location":"westeurope","tags":{"team":"payments"}},
   resp={"id":UAMI,"name":"id-payments-api","type":"Microsoft.ManagedIdentity/userAssignedIdentities","location":"westeurope","properties":{"tenantId":TEN,"principalId":"3a3a3a3a-0000-4000-8000-0000000000b1","clientId":"4b4b4b4b-0000-4000-8000-0000000000b2"}})
FICB={"properties":{"issuer":ISSUER,"subject":"system:serviceaccount:payments:payments-api","audiences":["api://AzureADTokenExchange"]}}
day1+=phases("ci",2,10,31,"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",FIC,req=FICB)
relevant1=len(day1)
day1+=noise(2,34)
day1.sort(key=lambda r:r["time"])
# ---------- day 2 ----------
OWN=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/7e1e7e1e-0004-4a00-8000-000000000004"
own=phases("mallory",3,2,17,RA,OWN,req=ra_body("8e3af657-a8ff-443c-a75c-2fe8c4bcb635",MALLORY,"User",f"/subscriptions/{SUB}"))
own_start,own_accept,own_success=own
rest=[]
rest+=phases("mallory",3,2,21,"Microsoft.ContainerService/managedClusters/write",AKS,req=cluster_body(False))
rest+=[rec("mallory",t(3,2,24,1),"Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",AKS,"Start",c:=gid()),
       rec("mallory",t(3,2,24,2),"Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",AKS,"Success",c)]
rest+=phases("mallory",3,2,30,"Microsoft.Authorization/roleAssignments/delete",A3.upper())
rest+=phases("bob",3,11,5,RA,f"{RG}/providers/Microsoft.Authorization/roleAssignments/7e1e7e1e-0005-4a00-8000-000000000005",
   req=ra_body("18d7d88d-d35e-4fb5-a5c3-7773c20a72d9","7e7e7e7e-0000-4000-8000-00000000b0b0","User",RG),fail=True)
rest+=phases("mallory",3,2,35,"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",FIC,
   req={"properties":{"issuer":ISSUER,"subject":"system:serviceaccount:payments:debug-shell","audiences":["api://AzureADTokenExchange"]}})
CR=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/2f4c8d6e-1a3b-4c5d-8e9f-0a1b2c3d4e5f"
rest+=phases("mallory",3,2,40,"Microsoft.Authorization/roleDefinitions/write",CR,req={"properties":{"roleName":"AKS Credential Reader","description":"Read cluster credentials","type":"CustomRole",
   "permissions":[{"actions":["Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action","Microsoft.ContainerService/managedClusters/read"],"notActions":[],"dataActions":[],"notDataActions":[]}],"assignableScopes":[f"/subscriptions/{SUB}"]}})
n2=noise(3,40)
# Envelope order: Success of the Owner grant early, its Start (with body) in a later envelope, a duplicate Success at the end.
body=sorted(rest+n2,key=lambda r:r["time"])
third=len(body)//3
day2=[own_success,own_accept]+body[:third]+[own_start]+body[third:]+[own_success]
# ---------- kubernetes ----------
def meta(name, ns=None, labels=None, ann=None, rv="1000", time="2026-10-01T08:00:00Z", created="2026-10-01T08:00:00Z"):
    m={"name":name,"uid":gid(),"resourceVersion":rv,"creationTimestamp":created,"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"v1","time":time,"fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{}}}]}
    if ns: m["namespace"]=ns
    if labels: m["labels"]=labels
    if ann: m["annotations"]=ann
    return m
RB="rbac.authorization.k8s.io/v1"
boot={"kubernetes.io/bootstrapping":"rbac-defaults"}
agg_view_rules=[{"apiGroups":[""],"resources":["configmaps","endpoints","pods","services"],"verbs":["get","list","watch"]}]
def crb(name,role,subjects,**kw): return {"apiVersion":RB,"kind":"ClusterRoleBinding","metadata":meta(name,**kw),"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":role},"subjects":subjects}
def rb(name,ns,rk,role,subjects,**kw): return {"apiVersion":RB,"kind":"RoleBinding","metadata":meta(name,ns,**kw),"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":rk,"name":role},"subjects":subjects}
def G(x): return {"apiGroup":"rbac.authorization.k8s.io","kind":"Group","name":x}
def SA(n,ns): return {"kind":"ServiceAccount","name":n,"namespace":ns}
items=[
 {"apiVersion":RB,"kind":"ClusterRole","metadata":meta("cluster-admin",labels=boot,ann={"rbac.authorization.kubernetes.io/autoupdate":"true"}),"rules":[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]},{"nonResourceURLs":["*"],"verbs":["*"]}]},
 {"apiVersion":RB,"kind":"ClusterRole","metadata":meta("system:aggregate-to-view",labels={**boot,"rbac.authorization.k8s.io/aggregate-to-view":"true"}),"rules":agg_view_rules},
 {"apiVersion":RB,"kind":"ClusterRole","metadata":meta("view-secrets-operator"),"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}]},
 crb("aks-cluster-admin-binding-aad","cluster-admin",[G(ADMINS)],labels={"addonmanager.kubernetes.io/mode":"Reconcile","kubernetes.io/cluster-service":"true"}),
 crb("system:basic-user","system:basic-user",[G("system:authenticated")],labels=boot),
 {"apiVersion":RB,"kind":"Role","metadata":meta("payments-deployer","payments"),"rules":[{"apiGroups":["apps"],"resources":["deployments"],"verbs":["create","delete","get","list","patch","update","watch"]},{"apiGroups":[""],"resources":["services"],"verbs":["create","delete","get","list","patch","update"]}]},
 rb("payments-deployer-binding","payments","Role","payments-deployer",[G("e0e0e0e0-2222-3333-4444-555566667777")]),
 rb("prometheus-read","monitoring","ClusterRole","view",[SA("prometheus","monitoring")]),
 {"apiVersion":"v1","kind":"ServiceAccount","metadata":meta("payments-api","payments",labels={"app.kubernetes.io/name":"payments-api"},ann={"azure.workload.identity/client-id":"4b4b4b4b-0000-4000-8000-0000000000b2","azure.workload.identity/tenant-id":TEN,"meta.helm.sh/release-name":"payments-api"})},
 {"apiVersion":"v1","kind":"ServiceAccount","metadata":meta("default","payments")},
]
k8s1={"apiVersion":"v1","kind":"List","items":items,"metadata":{"resourceVersion":""}}
import copy
def mod(o, rv, time): o=copy.deepcopy(o); o["metadata"]["resourceVersion"]=rv; o["metadata"]["managedFields"][0]["time"]=time; return o
ev=[]
ev.append({"type":"ADDED","object":crb("debug-admin","cluster-admin",[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"mallory@contoso.com"}],rv="2001",time="2026-11-03T02:26:10Z",created="2026-11-03T02:26:10Z")})
sa=mod(items[8],"2002","2026-11-03T09:00:00Z"); sa["metadata"]["annotations"]["meta.helm.sh/release-name"]="payments-api-v2"; sa["metadata"]["labels"]["helm.sh/chart"]="payments-api-2.4.1"
ev.append({"type":"MODIFIED","object":sa})
rbm=mod(items[6],"2003","2026-11-03T02:28:00Z"); rbm["subjects"].append(SA("default","payments"))
ev.append({"type":"MODIFIED","object":rbm})
ev.append({"type":"DELETED","object":mod(items[7],"2004","2026-11-03T02:31:00Z")})
agg=mod(items[1],"2005","2026-11-03T04:00:00Z"); agg["rules"].append({"apiGroups":["discovery.k8s.io"],"resources":["endpointslices"],"verbs":["get","list","watch"]})
ev.append({"type":"MODIFIED","object":agg})
d=os.path.dirname(os.path.abspath(__file__))
open(f"{d}/day1-activity.json","w").write(envelopes(day1,8))
open(f"{d}/day2-activity.json","w").write(envelopes(day2,8))
open(f"{d}/day1-k8s.json","w").write(json.dumps(k8s1,indent=2)+"\n")
lines=[json.dumps(e) for e in ev]
lines.insert(3,'{"type":"MODIFIED","object":{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"truncated-by-a-log-shipper","namespace":"payments"')
open(f"{d}/day2-k8s.ndjson","w").write("\n".join(lines)+"\n")
print(len(day1), relevant1, len(day2))
